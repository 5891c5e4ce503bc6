package suggest

// Closest returns the candidate nearest to name by [Distance], the first of
// equally near ones, and its distance; "" and -1 when there is no
// candidate. Callers decide how near is near enough to be a likely typo.
func Closest(name string, candidates []string) (string, int) {
	best, bestDist := "", -1
	for _, c := range candidates {
		if d := Distance(name, c); bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best, bestDist
}
