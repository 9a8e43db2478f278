#!/bin/sh
# Reproduces sim.out (about 10 minutes on 2 cores). Seed 1 throughout, as the original script.
set -e
cd "$(dirname "$0")"
for m in wilson window cumulative; do
  python3 sim_sequential.py 0.92 0.9 1000000 100 --method $m          # false breach, 1e6
  python3 sim_sequential.py 0.92 0.9 100000 100 --method $m           # false breach, 1e5
  python3 sim_sequential.py 0.90 0.9 1000000 200 --method $m          # at the bar exactly
  python3 sim_sequential.py 0.91 0.9 1000000 100 --method $m          # just above the bar
  python3 sim_sequential.py 0.88 0.9 1000000 100 --method $m          # false pass
  python3 sim_sequential.py 0.85 0.9 100000 100 --method $m --kind breach   # power: time to breach
  python3 sim_sequential.py 0.97 0.9 100000 100 --method $m --kind pass     # time to pass
  python3 sim_sequential.py 0.92 0.9 100000 100 --method $m --kind pass     # time to pass, near the bar
done
