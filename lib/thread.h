/*
 * thread.h: starting ticketd's helper threads. Signals belong to the
 * daemon's main thread, so every other thread starts with all of them
 * blocked, whenever it is started (a reload may start workers after main
 * has unblocked its own).
 */
#ifndef TICKETD_THREAD_H
#define TICKETD_THREAD_H

#include <pthread.h>

/* pthread_create with every signal blocked in the new thread; 0 or -errno. */
int thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

#endif /* TICKETD_THREAD_H */
