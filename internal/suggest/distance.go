// Package suggest finds what a misspelt name was meant to be: the edit
// distance that config (TOML keys, environment variables) and workflow
// (template keys) use to say "did you mean ...?". It imports nothing of the
// module, so every package may use it.
package suggest

// Distance is the optimal string alignment distance between a and b, in
// runes: Levenshtein (insertions, deletions, substitutions) plus the
// transposition of two adjacent characters, the most common typo ("prot"
// for "port"), each counting one.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows suffice: transposition looks back two rows.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
