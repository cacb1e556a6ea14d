-- flash_sale.lua: a wrk script for the flash sale. Every request buys one
-- ticket (quantity and tier settable) of one event; each wrk thread counts
-- its replies by status and the tickets its 201s granted, and done() prints
-- the totals and the time it took to serve them (see wrk_common.lua for the
-- quota, the drain and the RESULT line).
--
--   wrk -t1 -c64 -d60s -s tests/load/flash_sale.lua http://127.0.0.1:PORT -- \
--       event=flash-sale quota=100000
--
-- Options (key=value after the URL): event=ID (default flash-sale),
-- path=P (POST here instead of /v1/events/ID/purchase; nginx uses /buy),
-- quantity=N (1), tier=NAME (general), buyer=NAME (flash), and the common
-- quota=, seconds=, threads=, filler=, seed=.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "wrk_common.lua")

local req -- this thread's request; every purchase is the same

common.install {
	label = "flash_sale",
	defaults = { event = "flash-sale", path = "", quantity = 1,
		     tier = "general", buyer = "flash" },
	init = function(o)
		local path = o.path ~= "" and o.path
			or ("/v1/events/" .. o.event .. "/purchase")
		local body = string.format('{"quantity":%d,"tier":"%s","buyer":"%s-%d"}',
			o.quantity, o.tier, o.buyer, thread_index)
		req = wrk.format("POST", path,
			{ ["Content-Type"] = "application/json" }, body)
	end,
	purchase = function() return req end,
}
