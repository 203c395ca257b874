#include <wasp/virtine.h>
virtine int first(void *p) { return *(char *)p; }
int main(void) { return 0; }
