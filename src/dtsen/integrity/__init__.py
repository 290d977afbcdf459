"""Registry integrity: split surges per village and account, implausible recipients (issue 15)."""
