#include <wasp/virtine.h>
struct node { int v; struct node *next; };
virtine int head(struct node n) { return n.v; }
int main(void) { return 0; }
