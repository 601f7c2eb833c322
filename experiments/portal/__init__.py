"""Portal pages of the experiments app, one module per area (each with its views and `urlpatterns`,
relative to /t/<tenant_slug>/). Thin, as every view here: scoping and permissions from
tenants.portal.TenantPortalMixin, the work from experiments.services, runs, scheduling and workflows."""
