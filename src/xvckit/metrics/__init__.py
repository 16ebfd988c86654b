"""The guide's KPIs, measured: sources (the gateway's ledger, a git repository, JUnit and
coverage files, documentation, incidents, doctor history), one table of KPI definitions, the
report over a period and the one before it, and the ROI of the guide's API tiers."""
