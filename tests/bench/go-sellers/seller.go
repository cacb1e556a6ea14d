// Package seedbench reproduces the ticket-seller variants of the Go article
// "Selling Tickets That Don't Exist".
//
// Every seller has an optional "processing" delay (Sleep). When Sleep > 0 the
// seller calls time.Sleep(Sleep) AFTER a ticket has been reserved and OUTSIDE
// any critical section (the "short critical section" design: reserve under
// the lock / CAS, then do the slow work without holding anything).
// With Sleep == 0 the delay is removed entirely.
package seedbench

import (
	"math/rand"
	"sync"
	"sync/atomic"
	"time"
)

// Seller is the common interface used by the benchmarks and the flash sale.
type Seller interface {
	SellTicket() bool
	Sold() int64
	Available() int64
}

// ---------------------------------------------------------------------------
// MutexShortCS: lock, check available>0, decrement available, increment sold,
// unlock. (Processing sleep, if any, happens after unlock.)
type MutexSeller struct {
	mu        sync.Mutex
	available int64
	sold      int64
	Sleep     time.Duration
}

func NewMutexSeller(n int64, sleep time.Duration) *MutexSeller {
	return &MutexSeller{available: n, Sleep: sleep}
}

func (s *MutexSeller) SellTicket() bool {
	s.mu.Lock()
	if s.available <= 0 {
		s.mu.Unlock()
		return false
	}
	s.available--
	s.sold++
	s.mu.Unlock()
	if s.Sleep > 0 {
		time.Sleep(s.Sleep) // processing, outside the critical section
	}
	return true
}

func (s *MutexSeller) Sold() int64      { s.mu.Lock(); defer s.mu.Unlock(); return s.sold }
func (s *MutexSeller) Available() int64 { s.mu.Lock(); defer s.mu.Unlock(); return s.available }

// ---------------------------------------------------------------------------
// AtomicCAS:
//
//	loop { cur := Load(&avail); if cur<=0 return false;
//	       if CAS(&avail,cur,cur-1) { Add(&sold,1); return true } }
type AtomicSeller struct {
	available int64
	sold      int64
	Sleep     time.Duration
}

func NewAtomicSeller(n int64, sleep time.Duration) *AtomicSeller {
	return &AtomicSeller{available: n, Sleep: sleep}
}

func (s *AtomicSeller) SellTicket() bool {
	for {
		cur := atomic.LoadInt64(&s.available)
		if cur <= 0 {
			return false
		}
		if atomic.CompareAndSwapInt64(&s.available, cur, cur-1) {
			atomic.AddInt64(&s.sold, 1)
			if s.Sleep > 0 {
				time.Sleep(s.Sleep)
			}
			return true
		}
	}
}

func (s *AtomicSeller) Sold() int64      { return atomic.LoadInt64(&s.sold) }
func (s *AtomicSeller) Available() int64 { return atomic.LoadInt64(&s.available) }

// ---------------------------------------------------------------------------
// Sharded: numShards shards, each with its own sync.Mutex and available int;
// start at rand.Intn(numShards) and scan all shards.
// (Reproduced as described: plain struct array, no cache-line padding, and
// the global math/rand source, which in Go 1.19 is itself mutex-protected.)
type shard struct {
	mu        sync.Mutex
	available int
	sold      int
}

type ShardedSeller struct {
	shards    []shard
	numShards int
	Sleep     time.Duration
}

func NewShardedSeller(n int64, numShards int, sleep time.Duration) *ShardedSeller {
	s := &ShardedSeller{shards: make([]shard, numShards), numShards: numShards, Sleep: sleep}
	per := int(n) / numShards
	rem := int(n) % numShards
	for i := range s.shards {
		s.shards[i].available = per
		if i < rem {
			s.shards[i].available++
		}
	}
	return s
}

func (s *ShardedSeller) SellTicket() bool {
	start := rand.Intn(s.numShards)
	for i := 0; i < s.numShards; i++ {
		sh := &s.shards[(start+i)%s.numShards]
		sh.mu.Lock()
		if sh.available > 0 {
			sh.available--
			sh.sold++
			sh.mu.Unlock()
			if s.Sleep > 0 {
				time.Sleep(s.Sleep)
			}
			return true
		}
		sh.mu.Unlock()
	}
	return false
}

func (s *ShardedSeller) Sold() int64 {
	var t int64
	for i := range s.shards {
		s.shards[i].mu.Lock()
		t += int64(s.shards[i].sold)
		s.shards[i].mu.Unlock()
	}
	return t
}

func (s *ShardedSeller) Available() int64 {
	var t int64
	for i := range s.shards {
		s.shards[i].mu.Lock()
		t += int64(s.shards[i].available)
		s.shards[i].mu.Unlock()
	}
	return t
}

// ---------------------------------------------------------------------------
// Naive: no locking; check then decrement (racy, oversells / loses updates).
type NaiveSeller struct {
	available int64
	sold      int64
	Sleep     time.Duration
}

func NewNaiveSeller(n int64, sleep time.Duration) *NaiveSeller {
	return &NaiveSeller{available: n, Sleep: sleep}
}

func (s *NaiveSeller) SellTicket() bool {
	if s.available > 0 {
		s.available--
		s.sold++
		if s.Sleep > 0 {
			time.Sleep(s.Sleep)
		}
		return true
	}
	return false
}

func (s *NaiveSeller) Sold() int64      { return s.sold }
func (s *NaiveSeller) Available() int64 { return s.available }
