DROP TABLE rate_limits;
DROP TABLE consents;
DROP TABLE tokens;
DROP TABLE authorization_codes;
DROP TABLE clients;
DROP TABLE users;
