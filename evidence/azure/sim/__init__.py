"""The parts of the simulated Resource Manager: tenant model, ARM bodies, Activity Log, metrics.

``evidence.azure.simulator`` is the entry point (``SimulatedAzure``, ``load_tenant``); these
modules are split out only to keep each one readable.
"""
