package retry

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Wake offers items by their order, not the order they were added in; it
// takes what take accepts (stopping their timers) and leaves the rest held.
func TestWaitlistWakeOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOwner(&sync.Mutex{})
		const n = 20
		orders := rand.New(rand.NewPCG(1, 2)).Perm(n)
		name := func(order int) string { return string(rune('A' + order)) }
		o.mu.Lock()
		for _, order := range orders {
			o.w.Add(name(order), uint64(order), 10*time.Second, o.expire)
		}
		o.mu.Unlock()
		if slices.IsSorted(orders) {
			t.Fatal("the shuffle left the orders sorted")
		}

		var want, wantTaken, wantLeft []string
		for order := range n {
			want = append(want, name(order))
			if order%3 == 0 {
				wantTaken = append(wantTaken, name(order))
			} else {
				wantLeft = append(wantLeft, name(order))
			}
		}
		offered, taken := o.wake(func(item string) bool { return (item[0]-'A')%3 == 0 })
		if !slices.Equal(offered, want) {
			t.Errorf("Wake offered %v, want ascending order %v", offered, want)
		}
		if !slices.Equal(taken, wantTaken) {
			t.Errorf("Wake took %v, want %v", taken, wantTaken)
		}
		if o.len() != len(wantLeft) {
			t.Errorf("Len = %d after Wake, want %d", o.len(), len(wantLeft))
		}
		for _, item := range taken {
			if o.has(item) {
				t.Errorf("Has(%q) = true after Wake took it", item)
			}
		}

		// The rejected ones are still held, in order, and nothing is taken
		// by a Wake that accepts nothing.
		offered, _ = o.wake(func(string) bool { return false })
		if !slices.Equal(offered, wantLeft) {
			t.Errorf("second Wake offered %v, want %v", offered, wantLeft)
		}
		if o.len() != len(wantLeft) {
			t.Errorf("Len = %d after a Wake that took nothing, want %d", o.len(), len(wantLeft))
		}

		// Their timers still run; the taken items' were stopped.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		got := o.expiredItems()
		slices.Sort(got)
		if !slices.Equal(got, wantLeft) {
			t.Errorf("expired %v, want the items Wake left %v", got, wantLeft)
		}
		o.checkExpireSaw(t)
	})
}

// Adding a held item again moves it to its new order; items of equal order
// leave in the order they were added.
func TestWaitlistAddAgainMoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOwner(&sync.Mutex{})
		o.mu.Lock()
		add := func(item string, order uint64) { o.w.Add(item, order, time.Hour, o.expire) }
		add("a", 1)
		add("b", 2)
		add("c", 3)
		add("d", 4)
		add("a", 5) // a to the back
		add("d", 0) // d to the front
		add("e", 2) // after b, which has the same order
		add("f", 2)
		o.mu.Unlock()
		if o.len() != 6 {
			t.Errorf("Len = %d, want 6", o.len())
		}
		offered, _ := o.wake(func(string) bool { return true })
		if want := []string{"d", "b", "e", "f", "c", "a"}; !slices.Equal(offered, want) {
			t.Errorf("Wake offered %v, want %v", offered, want)
		}
		if o.len() != 0 {
			t.Errorf("Len = %d after Wake took all, want 0", o.len())
		}
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if got := o.expiredItems(); len(got) != 0 {
			t.Errorf("expired %v after Wake took every item", got)
		}
	})
}

// Many Adds, Removes, expiries and Wakes, checked against a model: Wake
// offers exactly the held items, ascending by (order, Add), and Len agrees.
func TestWaitlistModel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type held struct {
			order, seq uint64
		}
		var mu sync.Mutex
		w := NewWaitlist[int](&mu)
		model := map[int]held{}
		expire := func(item int) { delete(model, item) } // with mu held
		r := rand.New(rand.NewPCG(3, 4))
		var seq uint64
		for step := range 5000 {
			mu.Lock()
			item := r.IntN(200)
			switch op := r.IntN(10); {
			case op < 6:
				seq++
				order := uint64(r.IntN(50))
				w.Add(item, order, time.Duration(1+r.IntN(100))*time.Millisecond, expire)
				model[item] = held{order, seq}
			case op < 8:
				_, want := model[item]
				if got := w.Remove(item); got != want {
					t.Fatalf("step %d: Remove(%d) = %v, want %v", step, item, got, want)
				}
				delete(model, item)
			default:
				var want []int
				for it := range model {
					want = append(want, it)
				}
				slices.SortFunc(want, func(a, b int) int {
					if model[a].order != model[b].order {
						return int(model[a].order) - int(model[b].order)
					}
					return int(model[a].seq) - int(model[b].seq)
				})
				var offered []int
				keep := r.IntN(4) // takes one item in keep+1
				w.Wake(func(it int) bool {
					offered = append(offered, it)
					return it%(keep+1) == 0
				})
				if !slices.Equal(offered, want) {
					t.Fatalf("step %d: Wake offered %v, want %v", step, offered, want)
				}
				for _, it := range offered {
					if it%(keep+1) == 0 {
						delete(model, it)
					}
				}
			}
			if w.Len() != len(model) {
				t.Fatalf("step %d: Len = %d, want %d", step, w.Len(), len(model))
			}
			mu.Unlock()
			time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
			synctest.Wait()
		}
		time.Sleep(time.Second)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if w.Len() != 0 || len(model) != 0 {
			t.Errorf("at the end: Len = %d, model %v; want both empty", w.Len(), model)
		}
	})
}

// Wake taking thousands of items in one pass leaves an empty list, with no
// timer left to fire.
func TestWaitlistWakeTakesMany(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOwner(&sync.Mutex{})
		const n = 5000
		o.mu.Lock()
		for i := range n {
			o.addLocked(string(rune(0x1000+i)), time.Minute)
		}
		o.mu.Unlock()
		offered, taken := o.wake(func(string) bool { return true })
		if len(offered) != n || len(taken) != n || o.len() != 0 {
			t.Fatalf("Wake offered %d, took %d, left %d; want %d, %d, 0", len(offered), len(taken), o.len(), n, n)
		}
		if !slices.IsSorted(offered) { // names grow with the sequence number
			t.Error("Wake did not offer the items in the order they were added")
		}
		o.add("last", time.Minute)
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := o.expiredItems(); len(got) != 1 || got[0] != "last" {
			t.Errorf("expired %d items, want only [last]", len(got))
		}
	})
}

// First names the item first in order without taking it, skips items
// removed or expired, and reports none on an empty list.
func TestWaitlistFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := newOwner(&sync.Mutex{})
		o.mu.Lock()
		if _, ok := o.w.First(); ok {
			t.Fatal("First on an empty list reported an item")
		}
		o.w.Add("c", 3, 10*time.Second, o.expire)
		o.w.Add("a", 1, time.Second, o.expire)
		o.w.Add("b", 2, 10*time.Second, o.expire)
		if first, ok := o.w.First(); !ok || first != "a" {
			t.Fatalf("First = %q, %v; want a", first, ok)
		}
		if !o.w.Has("a") {
			t.Fatal("First took its item")
		}
		o.mu.Unlock()
		time.Sleep(2 * time.Second) // a expires
		synctest.Wait()
		o.mu.Lock()
		if first, _ := o.w.First(); first != "b" {
			t.Fatalf("after a expired, First = %q, want b", first)
		}
		o.w.Remove("b")
		if first, _ := o.w.First(); first != "c" {
			t.Fatalf("after b was removed, First = %q, want c", first)
		}
		o.w.Remove("c")
		if _, ok := o.w.First(); ok || o.w.Len() != 0 {
			t.Fatal("First reported an item after all were removed")
		}
		o.mu.Unlock()
	})
}
