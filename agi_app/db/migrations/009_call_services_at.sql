-- When a call reached each service (the journey writer stamps it as the engine reports the service's
-- result): `hotline kpi` measures time to service per service from calls.started_at. Rows written
-- before this migration have none and are left out of that figure.
ALTER TABLE call_services ADD COLUMN at timestamptz;
