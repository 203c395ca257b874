#include <wasp/virtine.h>
int host_log(int x); /* in another file of the program, so not in the guest */
virtine int shout(int x) { return host_log(x); }
int main(void) { return shout(1); }
