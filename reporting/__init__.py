"""Reporting: templated SQL reports (sql/reports), dashboards (sheets_templates) and their targets."""
