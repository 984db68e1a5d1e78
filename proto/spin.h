/*
 * Waiting for a descriptor without sleeping, for a moment.
 *
 * Waking a thread that sleeps on an idle virtual CPU costs tens of
 * microseconds (the vCPU halts, and the host must run it again), as much as
 * the work around a SoftHSM signature.  Where the next byte is probably a
 * few hundred microseconds away (a helper's answer, a signing tool's next
 * request), the waiter polls instead, yielding the CPU at every turn to
 * whatever is runnable, and sleeps only once the moment has passed.
 */
#ifndef CX_PROTO_SPIN_H
#define CX_PROTO_SPIN_H

#include <stdint.h>

/* Returns once fd is readable (or in error, or hung up) or us microseconds have passed. */
void cx_spin_readable(int fd, int64_t us);

#endif
