module github.com/sluice-streams/sluice

go 1.26
