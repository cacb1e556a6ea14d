-- purchase_mix.lua: a wrk script that buys like a crowd: random buyers,
-- quantities 1..4 (mostly 1) and tiers (mostly general; a share asks for vip
-- with the event's vip_code). Each wrk thread has its own seeded RNG and
-- counts its replies by status and the tickets granted per tier; done()
-- prints the totals (see wrk_common.lua for the quota, drain and RESULT).
--
--   TICKETD_VIP_CODE=secret wrk -t1 -c64 -d10s \
--       -s tests/load/purchase_mix.lua http://127.0.0.1:PORT -- event=concert
--
-- Options (key=value after the URL): event=ID (default concert),
-- vip_code=CODE (default $TICKETD_VIP_CODE), vip_share=F (fraction of
-- requests asking for vip: default 0.1 with a code, 0 without),
-- buyers=N (distinct buyer names, 100000), and the common quota=,
-- seconds=, threads=, filler=, seed=.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "wrk_common.lua")

local path, headers, vip_code, vip_share

-- Quantity 1..4, weighted to 1: 70% 1, 15% 2, 10% 3, 5% 4.
local function quantity()
	local r = math.random(100)
	if r <= 70 then return 1 elseif r <= 85 then return 2
	elseif r <= 95 then return 3 else return 4 end
end

common.install {
	label = "purchase_mix",
	defaults = { event = "concert", vip_code = "", vip_share = -1,
		     buyers = 100000 },
	init = function(o)
		path = "/v1/events/" .. o.event .. "/purchase"
		headers = { ["Content-Type"] = "application/json" }
		vip_code = o.vip_code ~= "" and o.vip_code
			or os.getenv("TICKETD_VIP_CODE")
		vip_share = o.vip_share
		if vip_share < 0 then vip_share = vip_code and 0.1 or 0 end
	end,
	purchase = function(o)
		local buyer = string.format("buyer-%d", math.random(o.buyers))
		local body
		if vip_share > 0 and math.random() < vip_share then
			body = string.format('{"quantity":%d,"tier":"vip","buyer":"%s","vip_code":"%s"}',
				quantity(), buyer, vip_code or "")
		else
			body = string.format('{"quantity":%d,"tier":"general","buyer":"%s"}',
				quantity(), buyer)
		end
		return wrk.format("POST", path, headers, body)
	end,
}
