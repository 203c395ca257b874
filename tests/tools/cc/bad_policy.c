#include <wasp/virtine.h>
virtine virtine_mem(lots) int f(int x) { return x; }
int main(void) { return f(1); }
