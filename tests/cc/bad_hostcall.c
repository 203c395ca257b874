#include <stdio.h>
#include <wasp/virtine.h>
virtine int shout(int x) { printf("%d\n", x); return x; }
int main(void) { return shout(1); }
