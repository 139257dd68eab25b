package container

import (
	"crypto/rand"
	"encoding/hex"
	"math/big"
)

// Word lists for generated names ("brave_turing"), berth's own choice of
// adjectives and pioneers of computing.
var (
	nameAdjectives = []string{
		"agile", "amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crisp", "daring",
		"eager", "elated", "epic", "fervent", "fond", "gentle", "glad", "golden", "happy", "hardy",
		"humble", "jolly", "keen", "kind", "lively", "loyal", "lucid", "merry", "mighty", "nimble",
		"noble", "patient", "plucky", "polite", "proud", "quick", "quiet", "rapid", "serene", "sharp",
		"shiny", "silent", "smart", "snappy", "steady", "sunny", "swift", "tender", "tidy", "vivid",
		"warm", "wise", "witty", "zealous", "zen",
	}
	namePioneers = []string{
		"allen", "babbage", "backus", "bartik", "berners", "boole", "cerf", "church", "codd", "conway",
		"corbato", "dijkstra", "engelbart", "feigenbaum", "floyd", "goldberg", "hamilton", "hamming", "hopper", "hoare",
		"kahn", "karp", "kay", "knuth", "lamport", "liskov", "lovelace", "mccarthy", "milner", "minsky",
		"moore", "naur", "neumann", "newell", "perlis", "pike", "rabin", "ritchie", "rivest", "shamir",
		"shannon", "simon", "sutherland", "tarjan", "thompson", "torvalds", "turing", "wirth", "wozniak", "yao",
	}
)

func randomIndex(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0
	}
	return int(v.Int64())
}

// generateName returns a random "adjective_pioneer" name; retry appends a
// digit like docker does after a collision.
func generateName(retry int) string {
	name := nameAdjectives[randomIndex(len(nameAdjectives))] + "_" + namePioneers[randomIndex(len(namePioneers))]
	if retry > 0 {
		name += string(rune('0' + randomIndex(10)))
	}
	return name
}

// NewID returns a random 64-hex-digit container ID whose short form is not
// all digits (docker avoids IDs that could be taken for a number).
func NewID() string {
	for {
		b := make([]byte, 32)
		rand.Read(b)
		id := hex.EncodeToString(b)
		for _, c := range id[:12] {
			if c >= 'a' {
				return id
			}
		}
	}
}

// validID reports whether id has the form NewID gives.
func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validName reports whether s matches docker's name rule
// [a-zA-Z0-9][a-zA-Z0-9_.-]+ (checked by hand: no regexp to compile at
// every start of berth).
func validName(s string) bool {
	if len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	if len(s) < 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}
