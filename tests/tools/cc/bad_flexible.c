#include <wasp/virtine.h>
struct msg { int n; char text[]; };
virtine int length(const struct msg *m) { return m->n; }
int main(void) { return 0; }
