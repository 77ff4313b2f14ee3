-- What the consent page shows about an application besides its name (OpenID Connect Dynamic
-- Client Registration 1.0 §2 names): its logo (logo_uri), home page (client_uri), privacy
-- policy (policy_uri) and terms of service (tos_uri). Each optional (NULL = not given); each an
-- absolute https URL (http only on a loopback host) of at most 2000 bytes, checked by the
-- clients service (src/domain/metadata_uri.rs).
ALTER TABLE clients ADD COLUMN logo_uri TEXT;
ALTER TABLE clients ADD COLUMN client_uri TEXT;
ALTER TABLE clients ADD COLUMN policy_uri TEXT;
ALTER TABLE clients ADD COLUMN tos_uri TEXT;
