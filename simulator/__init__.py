"""The synthetic world: debtors, creditors and mediators whose histories follow known rules.

Used by the demo, the tests and the benchmarks; the product's decision path never imports it.
``docs/simulator.md`` documents the model and says which module owns what; start at
``simulator.world.simulate_world``.
"""
