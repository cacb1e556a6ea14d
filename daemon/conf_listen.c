/*
 * conf_listen.c: a listen address as written in the configuration or on the
 * command line ("a.b.c.d:port" or "[v6]:port", numeric only) read into a
 * socket address. What crosses the border: the text in, a struct
 * conf_listen out (or -EINVAL); conf_set_listen replaces a loaded
 * configuration's list with one such address (the --listen override).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int conf_parse_listen(const char *s, struct conf_listen *out)
{
	char host[CONF_ADDR_MAX];
	const char *colon, *port_s;
	char *end;
	unsigned long port;
	size_t hlen, slen = strlen(s);

	if (slen == 0 || slen >= sizeof(out->text))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		hlen = (size_t)(close - s - 1);
		memcpy(host, s + 1, hlen);
		port_s = close + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -EINVAL;
		hlen = (size_t)(colon - s);
		memcpy(host, s, hlen);
		port_s = colon + 1;
	}
	host[hlen] = '\0';
	if (*port_s < '0' || *port_s > '9')
		return -EINVAL;
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (errno || *end || port > 65535)
		return -EINVAL;
	if (s[0] == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->addr;

		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			return -EINVAL;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		out->addrlen = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&out->addr;

		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return -EINVAL;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		out->addrlen = sizeof(*a4);
	}
	memcpy(out->text, s, slen + 1);
	return 0;
}

int conf_set_listen(struct conf *c, const char *s)
{
	struct conf_listen l;

	if (conf_parse_listen(s, &l) < 0)
		return -EINVAL;
	c->listen[0] = l;
	c->nlisten = 1;
	return 0;
}
