"""Write-audit-publish of DTSEN versions: candidate, audit, files, explain."""
