module vane.dev/bench/loadgen

go 1.22
