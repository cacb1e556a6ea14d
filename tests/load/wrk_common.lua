-- wrk_common.lua: the driver shared by purchase_mix.lua and flash_sale.lua.
-- wrk loads one script per thread (each thread has its own Lua state) plus
-- one in the main thread, which runs setup() per thread and done() once.
-- Nothing is shared between those states except values copied through
-- thread:set/get, and one small C array (the "finished" flags) reached
-- through LuaJIT's FFI.
--
-- A script calls common.install(spec); spec.purchase(opts) returns the next
-- purchase request (a string from wrk.format) and spec.label names the
-- script in its output. Options come after the URL, as key=value:
--
--   wrk -t1 -c64 -d60s -s flash_sale.lua http://127.0.0.1:PORT -- \
--       event=flash-sale quota=100000 threads=1
--
--   quota=N     purchases to send across all threads (0 = no quota); each
--               thread sends its share and stops once every one is answered
--   seconds=S   buy for S seconds (from the thread's first request), then
--               drain and stop (0 = until wrk's -d ends)
--   threads=N   wrk's -t (needed to split the quota and to end wrk early)
--   filler=P    path GET while draining (default /healthz); "none" = no
--               drain: stop at the quota's last reply (for nginx, which
--               answers 200 to everything and sells nothing)
--   seed=N      RNG seed; thread i uses seed * 1000 + i
--
-- Draining is what makes the counts exact: once a thread has sent its last
-- purchase, its connections only GET the filler path (200, which a purchase
-- never answers) until every purchase has its reply. So the 201s summed
-- here are every purchase the server completed, and can be compared with
-- the server's own "sold". When the last thread is done it sends SIGINT to
-- wrk's main thread, so wrk ends then rather than at -d.
--
-- The main output line starts with "RESULT " and holds key=value pairs that
-- tests/load/bench_http.sh and test_load_scripts.sh parse.
local common = {}

local have_ffi, ffi = pcall(require, "ffi")
if have_ffi then
	ffi.cdef[[
	typedef struct { long tv_sec; long tv_nsec; } wrkc_timespec;
	int clock_gettime(int clk, wrkc_timespec *ts);
	int getpid(void);
	int gettid(void);
	long syscall(long number, ...);
	int kill(int pid, int sig);
	void *calloc(size_t n, size_t size);
	]]
end

local MAX_THREADS = 256
local CLOCK_MONOTONIC = 1
local SIGINT = 2

-- Monotonic seconds (a float); os.time() when the FFI is missing.
local now
if have_ffi then
	local ts = ffi.new("wrkc_timespec")
	now = function()
		ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
		return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
	end
else
	now = os.time
end
common.now = now

-- Parses key=value arguments over defaults; numbers stay numbers.
function common.parse_args(args, defaults)
	local o = {}
	for k, v in pairs(defaults) do o[k] = v end
	for i = 1, #args do
		local k, v = args[i]:match("^([%w_]+)=(.*)$")
		if not k then
			error("argument '" .. args[i] .. "' is not key=value")
		end
		if type(defaults[k]) == "number" then
			v = tonumber(v) or error("argument " .. k .. " needs a number")
		end
		o[k] = v
	end
	return o
end

-- Sends SIGINT to wrk's main thread (its tid is the pid), which ends its
-- sleep(-d); returns true if it could.
local function end_wrk()
	if not have_ffi then return false end
	local pid = ffi.C.getpid()
	local tgkill = ({ x64 = 234, arm64 = 131 })[ffi.arch]
	if tgkill then
		return ffi.C.syscall(tgkill, ffi.cast("long", pid),
			ffi.cast("long", pid), ffi.cast("long", SIGINT)) == 0
	end
	return ffi.C.kill(pid, SIGINT) == 0
end

-- Sorted "status:count" list of a {status = count} table.
local function format_statuses(t)
	local keys = {}
	for k in pairs(t) do keys[#keys + 1] = tonumber(k) end
	table.sort(keys)
	local out = {}
	for _, k in ipairs(keys) do out[#out + 1] = k .. ":" .. t[k] end
	return table.concat(out, " ")
end

function common.install(spec)
	local threads = {} -- main state: one entry per wrk thread
	local flags_ptr    -- main state: address of the "finished" flags

	_G.setup = function(thread)
		if not flags_ptr and have_ffi then
			local p = ffi.C.calloc(MAX_THREADS, ffi.sizeof("int"))
			flags_ptr = tonumber(ffi.cast("uintptr_t", p))
		end
		if #threads == MAX_THREADS then error("more than 256 wrk threads") end
		threads[#threads + 1] = thread
		-- Globals of the thread's own state, read by its init().
		thread:set("thread_index", #threads)
		thread:set("flags_addr", flags_ptr or 0)
	end

	-- Thread state. Globals, so that done() can read them via thread:get.
	local o, share, deadline, filler_req, flags
	local buying = true
	local finished = false
	sent, replies, fillers, tickets = 0, 0, 0, 0
	statuses, tickets_by_tier = {}, {}
	t_first, t_last = 0, 0
	drains = false -- this thread drains with the filler path

	_G.init = function(args)
		local defaults = spec.defaults or {}
		defaults.quota = defaults.quota or 0
		defaults.seconds = defaults.seconds or 0
		defaults.threads = defaults.threads or 1
		defaults.filler = defaults.filler or "/healthz"
		defaults.seed = defaults.seed or 1
		o = common.parse_args(args, defaults) -- args[0] is the URL
		math.randomseed(o.seed * 1000 + thread_index)
		if o.quota > 0 then
			share = math.floor(o.quota / o.threads)
			if thread_index <= o.quota % o.threads then share = share + 1 end
		end
		if o.filler ~= "none" then
			filler_req = wrk.format("GET", o.filler, {}, nil)
			drains = true
		end
		if have_ffi and flags_addr ~= 0 then
			flags = ffi.cast("volatile int *", ffi.cast("uintptr_t", flags_addr))
		end
		nthreads = o.threads
		if spec.init then spec.init(o) end
	end

	-- True while this thread still has purchases to send.
	local function still_buying()
		if not buying then return false end
		if share and sent >= share then buying = false end
		if deadline and now() >= deadline then buying = false end
		return buying
	end

	-- Stops this thread; the last thread to stop ends wrk.
	local function finish()
		finished = true
		wrk.thread:stop()
		if not flags then return end
		flags[thread_index - 1] = 1
		for i = 0, o.threads - 1 do
			if flags[i] == 0 then return end
		end
		end_wrk()
	end

	-- wrk calls request() once on its main thread, before thread 1 runs,
	-- to check the request parses; that one is never sent.
	local function verifying()
		if have_ffi then return ffi.C.gettid() == ffi.C.getpid() end
		if thread_index == 1 and not verified then
			verified = true
			return true
		end
		return false
	end

	_G.request = function()
		if t_first == 0 and verifying() then return spec.purchase(o) end
		if t_first == 0 then
			t_first = now()
			if o.seconds > 0 then deadline = t_first + o.seconds end
		end
		if still_buying() then
			sent = sent + 1
			return spec.purchase(o)
		end
		-- Nothing left to buy: keep the connection busy with the filler
		-- (or, without one, with purchases that are never counted).
		return filler_req or spec.purchase(o)
	end

	_G.response = function(status, headers, body)
		if finished then return end
		if filler_req and status == 200 then
			fillers = fillers + 1
			return
		end
		replies = replies + 1
		t_last = now()
		statuses[status] = (statuses[status] or 0) + 1
		if status == 201 then
			local q = tonumber(body:match('"quantity"%s*:%s*(%d+)'))
			local tier = body:match('"tier"%s*:%s*"(%w+)"') or "?"
			q = q or 0
			tickets = tickets + q
			tickets_by_tier[tier] = (tickets_by_tier[tier] or 0) + q
		end
		if not filler_req then
			-- No drain: replies beyond the share are not counted.
			if share and replies >= share then finish() end
			return
		end
		if not still_buying() and replies >= sent then finish() end
	end

	_G.done = function(summary, latency, requests)
		local tot = { sent = 0, replies = 0, fillers = 0, tickets = 0 }
		local st, tiers = {}, {}
		local first, last = math.huge, 0
		local want, drained = 0, true
		for _, t in ipairs(threads) do
			for k in pairs(tot) do tot[k] = tot[k] + t:get(k) end
			for k, v in pairs(t:get("statuses")) do st[k] = (st[k] or 0) + v end
			for k, v in pairs(t:get("tickets_by_tier")) do
				tiers[k] = (tiers[k] or 0) + v
			end
			local f, l = t:get("t_first"), t:get("t_last")
			if f > 0 and f < first then first = f end
			if l > last then last = l end
			want = t:get("nthreads")
			drained = drained and t:get("drains")
		end
		local s201, s409 = st[201] or 0, st[409] or 0
		local other = tot.replies - s201 - s409
		local e = summary.errors
		local errors = e.connect + e.read + e.write + e.timeout
		local elapsed = (last > first) and (last - first) or 0
		local rate = elapsed > 0 and tot.replies / elapsed or 0
		-- Without a drain, purchases past the quota are sent but not counted.
		local unanswered = drained and tot.sent - tot.replies or 0
		local tier_list = {}
		for k, v in pairs(tiers) do tier_list[#tier_list + 1] = k .. ":" .. v end
		table.sort(tier_list)

		io.write(string.format("%s: %d thread(s), %d purchases sent, %d replied, %d unanswered\n",
			spec.label, #threads, tot.sent, tot.replies, unanswered))
		if want ~= #threads then
			io.write(string.format("%s: WARNING threads=%d given but wrk ran %d threads\n",
				spec.label, want, #threads))
		end
		io.write(string.format("  replies by status: %s\n", format_statuses(st)))
		io.write(string.format("  201: %d, tickets granted: %d (%s), 409: %d, other: %d\n",
			s201, tot.tickets, table.concat(tier_list, " "), s409, other))
		io.write(string.format("  socket errors: connect %d, read %d, write %d, timeout %d\n",
			e.connect, e.read, e.write, e.timeout))
		io.write(string.format("  served %d purchase replies in %.3f s (%.0f per second), %d filler GETs\n",
			tot.replies, elapsed, rate, tot.fillers))
		io.write(string.format("RESULT sent=%d replies=%d unanswered=%d s201=%d tickets=%d s409=%d "
			.. "other=%d errors=%d elapsed=%.6f rate=%.1f p50_us=%d p99_us=%d fillers=%d\n",
			tot.sent, tot.replies, unanswered, s201, tot.tickets, s409, other, errors,
			elapsed, rate, math.floor(latency:percentile(50)),
			math.floor(latency:percentile(99)), tot.fillers))
	end
end

return common
