# daemon/local.mk: ticketd. Every daemon module but main.c goes into
# daemon/libticketd.la, a library that is not installed: the program and the
# tests link it (with libticket inside), so no test compiles a daemon source
# of its own. The list is explicit, no wildcard.
noinst_LTLIBRARIES += daemon/libticketd.la
daemon_libticketd_la_SOURCES = \
	daemon/conf.h daemon/conf.c daemon/conf_listen.c \
	daemon/request.h daemon/request.c \
	daemon/http.h daemon/http.c \
	daemon/listen.h daemon/listen.c \
	daemon/conn.h daemon/conn.c \
	daemon/handoff.h daemon/handoff.c \
	daemon/loop.h daemon/loop.c \
	daemon/routes.h daemon/routes.c \
	daemon/job.h \
	daemon/purchase.h daemon/purchase.c \
	daemon/work.h daemon/work.c \
	daemon/payment.h daemon/payment.c \
	daemon/catalog.h daemon/catalog.c \
	daemon/orders.h daemon/orders.c \
	daemon/sd.h daemon/sd.c \
	daemon/service.h daemon/service.c \
	daemon/guard.h daemon/guard.c \
	daemon/idem.h daemon/idem.c \
	daemon/admin.h daemon/admin.c \
	daemon/answer.h daemon/answer.c \
	daemon/reply.h daemon/reply.c \
	daemon/metrics.h
# ./configure --disable-metrics leaves metrics.c out, and metrics.h makes
# every hook an empty inline.
if METRICS
daemon_libticketd_la_SOURCES += daemon/metrics.c
endif
daemon_libticketd_la_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JANSSON_CFLAGS) \
	$(SYSTEMD_CFLAGS)
daemon_libticketd_la_LIBADD = lib/libticket.la $(LIBEVENT_LIBS) $(JANSSON_LIBS) \
	$(SYSTEMD_LIBS)

sbin_PROGRAMS += daemon/ticketd
daemon_ticketd_SOURCES = daemon/main.c
daemon_ticketd_CFLAGS = $(daemon_libticketd_la_CFLAGS)
daemon_ticketd_LDADD = daemon/libticketd.la

EXTRA_DIST += conf/ticketd.conf daemon/local.mk
