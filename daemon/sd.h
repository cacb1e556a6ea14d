/*
 * sd.h: ticketd's systemd integration, behind intent-named wrappers. Every
 * libsystemd call lives in daemon/sd.c. All calls are harmless no-ops when
 * the daemon does not run under systemd (no NOTIFY_SOCKET, no LISTEN_FDS).
 */
#ifndef TICKETD_SD_H
#define TICKETD_SD_H

#include <stddef.h>
#include <stdint.h>

/* READY=1: every front-end loop accepts and the ledger is loaded. */
void sysd_notify_ready(void);
/* RELOADING=1 with MONOTONIC_USEC, at the start of a SIGHUP reload. */
void sysd_notify_reloading(void);
/* STOPPING=1, when shutdown begins. */
void sysd_notify_stopping(void);
/* STATUS=<text>, live figures for `systemctl status`. */
__attribute__((format(printf, 1, 2)))
void sysd_notify_status(const char *fmt, ...);
/* The watchdog interval in microseconds, or 0 when none was asked for. */
uint64_t sysd_watchdog_usec(void);
/* WATCHDOG=1; call only after checking that every loop and the pool progress. */
void sysd_notify_watchdog(void);
/* Sockets passed by systemd (LISTEN_FDS), checked to be listening TCP stream
 * sockets. Returns how many (0 = none passed, listen on the config's addresses),
 * the first fd in *first (SD_LISTEN_FDS_START), or -EINVAL with the cause in err. */
int sysd_listen_fds(int *first, char *err, size_t errlen);

#endif /* TICKETD_SD_H */
