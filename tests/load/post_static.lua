-- post_static.lua: the ceiling's request, aimed at ticketd. The same static
-- POST and body that tests/bench/nginx_ceiling.sh sends nginx (which ignores it),
-- so that ticketd and nginx are driven by the very same wrk command: no
-- request() or response() function, so wrk never calls into Lua per request.
--   wrk -t1 -c64 -d10s --latency -s post_static.lua \
--       http://127.0.0.1:PORT/v1/events/ID/purchase
wrk.method = "POST"
wrk.body   = '{"quantity":1,"tier":"general","buyer":"bench"}'
wrk.headers["Content-Type"] = "application/json"
