#include <wasp/virtine.h>
virtine_allow(console_write, launch_missiles) virtine int f(int x) { return x; }
int main(void) { return f(1); }
