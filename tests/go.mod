module github.com/detcd/detcd/tests

go 1.26.0

replace github.com/detcd/detcd => ../

require github.com/detcd/detcd v0.0.0-00010101000000-000000000000
