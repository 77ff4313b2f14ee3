DROP TABLE upstream_email_vouches;
