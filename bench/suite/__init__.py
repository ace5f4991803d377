# The benchmark suite of issue 17 (`bench/run`): each module measures one comparison or does
# one chore (installing peers, running processes, writing the report); __main__ composes them.
