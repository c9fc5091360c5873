package config

import (
	"fmt"
	"slices"
	"strings"
)

// didYouMean returns ` (did you mean "x"?)` when one of known is within a small edit
// distance of name (a typo: two edits, one for names of four letters or fewer), else "".
// The closest wins; ties go to the first in sorted order, so the hint is stable. A name
// that is one of known but for its case (names are case-sensitive, as PgBouncer's) is
// told so.
func didYouMean(name string, known []string) string {
	if lower := strings.ToLower(name); lower != name && slices.Contains(known, lower) {
		return fmt.Sprintf(" (names are lower case: %q)", lower)
	}
	limit := 2
	if len(name) <= 4 {
		limit = 1
	}
	best, bestD := "", limit+1
	sorted := slices.Clone(known)
	slices.Sort(sorted)
	for _, k := range sorted {
		if d := editDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Damerau-Levenshtein distance (optimal string alignment: insert,
// delete, substitute, swap two neighbours) between a and b, compared case-insensitively.
func editDistance(a, b string) int {
	a, b = strings.ToLower(a), strings.ToLower(b)
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// knownSections are the sections of a pgbouncer.ini; [peers] is PgBouncer's and is
// accepted with a warning.
var knownSections = []string{"pgbouncer", "databases", "users", "peers"}

// settingNames lists every [pgbouncer] key pgmux or PgBouncer knows.
func settingNames() []string {
	names := make([]string, 0, len(settings)+len(unsupportedSettings))
	for i := range settings {
		names = append(names, settings[i].name)
	}
	for k := range unsupportedSettings {
		names = append(names, k)
	}
	return names
}

// paramNames lists the keys of a [databases] or [users] parameter table and its
// unsupported companion.
func paramNames[F any](known map[string]F, unsupported map[string]bool) []string {
	names := make([]string, 0, len(known)+len(unsupported))
	for k := range known {
		names = append(names, k)
	}
	for k := range unsupported {
		names = append(names, k)
	}
	return names
}
