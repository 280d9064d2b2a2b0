package server

// SnapshotDir is where Maintenance.Snapshot writes the etcd database file
// it streams: the data directory.
func (s *Server) SnapshotDir() string { return s.cfg.DataDir }
