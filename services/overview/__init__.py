"""The stakeholder view: the fleet's health on one page, and its exports."""
