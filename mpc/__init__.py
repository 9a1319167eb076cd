"""The wallet engine: custodian and client roles over the MPC protocols (DESIGN.md section 3)."""
