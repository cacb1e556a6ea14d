# lib/cores.mk: the seller cores in libticket, their tests and benchmark.
lib_libticket_la_SOURCES += lib/seller.h lib/seller.c lib/seller_mutex.c
