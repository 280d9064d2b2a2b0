package core

// Campaign makes the member start an election now (a pre-vote first, as
// the member runs with PreVote), as if its election timeout had fired: the
// interaction tests' campaign command, so that transcripts need not tick
// a member through its election timeout to elect it.
func (n *Node) Campaign() error { return n.rn.Campaign() }
