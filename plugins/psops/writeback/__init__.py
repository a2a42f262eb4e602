"""Write-back: deal-to-project set-up, corrections and alerts, through an outbox."""
