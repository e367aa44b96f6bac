"""Every YAML schema as typed, frozen dataclasses (experiment, data sources, sweeps, studies) and the strict
filler that names the bad key and file. Imports only the models (for their config classes) and the ground floor."""
