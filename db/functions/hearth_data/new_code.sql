-- new_code: a random 6-character code from an alphabet without look-alikes (no 0/O/1/I/L): 31 symbols,
-- 31^6 = 887,503,681 codes. Bytes come from gen_random_uuid (a strong random source); rejection
-- sampling keeps every symbol equally likely.
CREATE OR REPLACE FUNCTION hearth_data.new_code()
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_alphabet constant text := '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
    v_code text := '';
    v_bytes bytea;
    v_byte integer;
BEGIN
    WHILE length(v_code) < 6 LOOP
        v_bytes := uuid_send(gen_random_uuid());
        FOR i IN 0..15 LOOP
            CONTINUE WHEN i IN (6, 8);  -- version and variant bits are not random
            v_byte := get_byte(v_bytes, i);
            IF v_byte < 248 THEN  -- 248 = 8 * 31: keeps the distribution uniform
                v_code := v_code || substr(c_alphabet, v_byte % 31 + 1, 1);
                EXIT WHEN length(v_code) = 6;
            END IF;
        END LOOP;
    END LOOP;
    RETURN v_code;
END
$$;

COMMENT ON FUNCTION hearth_data.new_code() IS 'A random 6-character session code (alphabet without 0/O/1/I/L).';
REVOKE ALL ON FUNCTION hearth_data.new_code() FROM PUBLIC;
