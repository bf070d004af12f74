"""Who may do what, and governed promotion: requests, gates, approvals, the audit
trail and the notifications they send."""
