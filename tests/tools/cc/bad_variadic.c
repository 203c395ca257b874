#include <wasp/virtine.h>
virtine int sum(int n, ...) { return n; }
int main(void) { return sum(1, 2); }
