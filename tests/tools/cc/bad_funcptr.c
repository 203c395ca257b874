#include <wasp/virtine.h>
virtine int apply(int (*fn)(int), int x) { return fn(x); }
int main(void) { return 0; }
