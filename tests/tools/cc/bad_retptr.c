#include <wasp/virtine.h>
static int g;
virtine int *where(int x) { g = x; return &g; }
int main(void) { return 0; }
