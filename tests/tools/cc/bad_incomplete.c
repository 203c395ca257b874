#include <wasp/virtine.h>
struct opaque;
virtine int peek(struct opaque *o) { return o != 0; }
int main(void) { return 0; }
