//! Diesel table definitions, written by hand to match both migration folders
//! (`migrations/sqlite` and `migrations/postgres`); the `migrations` test checks they agree.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        email -> Text,
        first_name -> Text,
        last_name -> Text,
        password_hash -> Nullable<Text>,
        is_active -> Bool,
        is_staff -> Bool,
        is_superuser -> Bool,
        email_verified -> Bool,
        date_joined -> Timestamp,
        last_login -> Nullable<Timestamp>,
        sessions_valid_after -> Nullable<Timestamp>,
        mfa_enabled -> Bool,
    }
}

diesel::table! {
    clients (client_id) {
        client_id -> Text,
        name -> Text,
        client_type -> Text,
        token_endpoint_auth_method -> Text,
        secret_hash -> Nullable<Text>,
        secret_hint -> Nullable<Text>,
        grant_types -> Text,
        redirect_uris -> Text,
        post_logout_redirect_uris -> Text,
        allowed_origins -> Text,
        allowed_scopes -> Text,
        skip_authorization -> Bool,
        require_pkce -> Bool,
        allow_plain_pkce -> Bool,
        introspect_all -> Bool,
        access_token_lifetime -> Nullable<BigInt>,
        refresh_token_lifetime -> Nullable<BigInt>,
        owner_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        id_token_signed_response_alg -> Text,
        access_token_format -> Text,
        always_issue_refresh_token -> Bool,
        resource_uris -> Text,
        logo_uri -> Nullable<Text>,
        client_uri -> Nullable<Text>,
        policy_uri -> Nullable<Text>,
        tos_uri -> Nullable<Text>,
    }
}

diesel::table! {
    authorization_codes (id) {
        id -> Text,
        code_hash -> Text,
        client_id -> Text,
        user_id -> Text,
        redirect_uri -> Text,
        redirect_uri_explicit -> Bool,
        scope -> Text,
        extensions -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        nonce -> Nullable<Text>,
        auth_time -> Nullable<Timestamp>,
        amr -> Nullable<Text>,
        resources -> Text,
        idp -> Nullable<Text>,
    }
}

diesel::table! {
    tokens (id) {
        id -> Text,
        token_hash -> Text,
        kind -> Text,
        client_id -> Text,
        user_id -> Nullable<Text>,
        scope -> Text,
        grant_type -> Text,
        family_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        rotated_at -> Nullable<Timestamp>,
        auth_time -> Nullable<Timestamp>,
        amr -> Nullable<Text>,
        resources -> Text,
        signing_kid -> Nullable<Text>,
        idp -> Nullable<Text>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        public_jwk -> Text,
        private_key -> Text,
        created_at -> Timestamp,
        activates_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        resources -> Text,
    }
}

diesel::table! {
    rate_limits (bucket) {
        bucket -> Text,
        window_start -> Timestamp,
        hits -> BigInt,
        last_hit_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    groups (id) {
        id -> Text,
        name -> Text,
        name_key -> Text,
        description -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    group_members (group_id, user_id) {
        group_id -> Text,
        user_id -> Text,
        added_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        occurred_at -> Timestamp,
        event -> Text,
        actor_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        client_id -> Nullable<Text>,
        ip -> Nullable<Text>,
        details -> Text,
    }
}

diesel::table! {
    one_time_codes (id) {
        id -> Text,
        user_id -> Text,
        purpose -> Text,
        code_hash -> Text,
        challenge_hash -> Nullable<Text>,
        client_id -> Nullable<Text>,
        scope -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        attempts -> BigInt,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    user_sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        ip -> Nullable<Text>,
        user_agent -> Text,
        amr -> Text,
        ended_at -> Nullable<Timestamp>,
        idp -> Nullable<Text>,
    }
}

diesel::table! {
    jobs (name) {
        name -> Text,
        next_run_at -> Timestamp,
        running_until -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        last_started_at -> Nullable<Timestamp>,
        last_finished_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        failures -> BigInt,
        every_seconds -> Nullable<BigInt>,
    }
}

diesel::table! {
    held_secrets (ticket_hash) {
        ticket_hash -> Text,
        client_id -> Text,
        user_id -> Text,
        sealed -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    upstream_links (id) {
        id -> Text,
        user_id -> Text,
        provider_id -> Text,
        issuer -> Text,
        subject -> Text,
        username -> Text,
        display_name -> Text,
        email -> Nullable<Text>,
        email_verified -> Bool,
        access_token_sealed -> Nullable<Text>,
        refresh_token_sealed -> Nullable<Text>,
        token_expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
        picture -> Nullable<Text>,
        tokens_refreshing_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    upstream_email_vouches (user_id) {
        user_id -> Text,
        provider_id -> Text,
        email -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    upstream_used_states (state_hash) {
        state_hash -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    discord_accounts (id) {
        id -> BigInt,
        link_id -> Text,
        username -> Text,
        discriminator -> Text,
        tag -> Text,
        global_name -> Nullable<Text>,
        avatar -> Nullable<Text>,
        public_flags -> BigInt,
        flags -> BigInt,
        locale -> Nullable<Text>,
        mfa_enabled -> Bool,
        email -> Nullable<Text>,
        verified -> Bool,
        last_login -> Timestamp,
        nick -> Nullable<Text>,
    }
}

diesel::table! {
    discord_roles (id) {
        id -> BigInt,
        name -> Text,
        color -> BigInt,
        position -> BigInt,
        managed -> Bool,
        unmappable -> Nullable<Text>,
        synced_at -> Timestamp,
        permissions -> Nullable<BigInt>,
    }
}

diesel::table! {
    discord_role_mappings (group_id, role_id) {
        group_id -> Text,
        role_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    discord_role_changes (id) {
        id -> Text,
        user_id -> Nullable<Text>,
        role_id -> BigInt,
        generation -> BigInt,
        attempts -> BigInt,
        next_attempt_at -> Timestamp,
        claimed_by -> Nullable<Text>,
        claimed_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        failed -> Bool,
        created_at -> Timestamp,
        action -> Text,
        discord_user_id -> Nullable<BigInt>,
        may_join -> Bool,
    }
}

diesel::table! {
    upstream_providers (id) {
        id -> Text,
        settings -> Text,
        client_secret_sealed -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    discord_connector_settings (id) {
        id -> BigInt,
        provider -> Text,
        guild_id -> BigInt,
        invite_link -> Nullable<Text>,
        remote_priority -> Bool,
        bot_token_sealed -> Nullable<Text>,
        updated_at -> Timestamp,
        updated_by -> Nullable<Text>,
        nickname_template -> Nullable<Text>,
    }
}

diesel::joinable!(authorization_codes -> clients (client_id));
diesel::joinable!(tokens -> clients (client_id));
diesel::joinable!(consents -> clients (client_id));
diesel::joinable!(group_members -> groups (group_id));
diesel::joinable!(group_members -> users (user_id));
diesel::joinable!(tokens -> users (user_id));
diesel::joinable!(upstream_links -> users (user_id));
diesel::joinable!(upstream_email_vouches -> users (user_id));
diesel::joinable!(discord_accounts -> upstream_links (link_id));
diesel::joinable!(discord_role_mappings -> groups (group_id));
diesel::joinable!(discord_role_changes -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    clients,
    authorization_codes,
    tokens,
    consents,
    rate_limits,
    signing_keys,
    groups,
    group_members,
    audit_events,
    one_time_codes,
    user_sessions,
    jobs,
    held_secrets,
    upstream_used_states,
    upstream_email_vouches,
    upstream_links,
    discord_accounts,
    upstream_providers,
    discord_roles,
    discord_role_mappings,
    discord_role_changes,
    discord_connector_settings,
);
