package dataplane

// replaceStale adds a port's guards and its DNAT elements (els) after
// the transaction adding them clashed (clash, EEXIST), replacing what
// they clashed with when it is stale:
//
//   - the port's guards, when the name's elements in the kernel are not
//     exactly the new ones (left by a release with other addresses or
//     another MAC: portDigest); all of the name's other elements go;
//   - DNAT elements holding one of els' keys with another value, only
//     when the caller holds the host ports' reservation (reserved), which
//     no live owner of those keys could let it take. Such an element is
//     left by a container that let its ports go before deleting its
//     elements (a monitor reports the exit first and deletes them after,
//     as the deletion waits for RCU grace periods) or whose monitor died;
//     its former owner's own deletion then finds the keys mapping to
//     another value and leaves them (removeElements).
//
// The stale elements are deleted and the new ones added in one
// transaction. With nothing stale, the add is tried again (what clashed
// may have been deleted meanwhile, by ReleaseGuards); a clash then is a
// real conflict.
func (d *Dataplane) replaceStale(clash error, port string, guards, els []element, reserved bool) error {
	all := append(guards[:len(guards):len(guards)], els...)
	err := clash
	for range 3 {
		var b *batch
		if b, err = d.newBatch(); err != nil {
			return err
		}
		var stale []element
		if len(guards) > 0 {
			var have []element
			if have, err = b.portGuards(port); err != nil {
				return err
			}
			stale = notAmong(have, guards)
		}
		if reserved {
			var s []element
			if s, err = d.staleElements(els); err != nil {
				return err
			}
			stale = append(stale, s...)
		}
		// With nothing stale, what clashed may have been deleted
		// meanwhile (ReleaseGuards): the plain add may do now.
		if err = b.delElements(keysOnly(stale), false); err != nil {
			return err
		}
		if err = b.addElements(all); err != nil {
			return err
		}
		if err = b.flush(); err == nil || !isExist(err) && !isNotExist(err) {
			return err
		}
		if len(stale) == 0 && isExist(err) {
			return err // nothing stale: a real conflict
		}
		// A stale element was deleted meanwhile (ENOENT), or another
		// took a key (EEXIST): look again.
	}
	return err
}

// notAmong are the elements of have that are not in want, with the same
// value.
func notAmong(have, want []element) []element {
	w := map[string]bool{}
	for _, e := range want {
		w[e.set+"\x00"+string(e.key)+"\x00"+elementValue(e.set, e.val, e.verdict)] = true
	}
	var out []element
	for _, e := range have {
		if !w[e.set+"\x00"+string(e.key)+"\x00"+elementValue(e.set, e.val, e.verdict)] {
			out = append(out, e)
		}
	}
	return out
}

// staleElements are the kernel's elements that have the key of one of
// els and another value.
func (d *Dataplane) staleElements(els []element) ([]element, error) {
	b, err := d.newBatch()
	if err != nil {
		return nil, err
	}
	want := map[string]map[string]string{}
	for _, e := range els {
		if want[e.set] == nil {
			want[e.set] = map[string]string{}
		}
		want[e.set][string(e.key)] = elementValue(e.set, e.val, e.verdict)
	}
	var out []element
	for set, keys := range want {
		got, err := b.c.GetSetElements(b.sets[set])
		if err != nil {
			return nil, err
		}
		for _, g := range got {
			if v, ok := keys[string(g.Key)]; ok && v != elementValue(set, g.Val, nil) {
				out = append(out, element{set: set, key: g.Key, val: g.Val})
			}
		}
	}
	return out, nil
}
