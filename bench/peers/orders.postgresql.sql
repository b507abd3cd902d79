-- The demo shop's orders as Altcraft order records, nested in SQL the way a drt or dlt user would write it:
-- (prices as strings: Altcraft refuses a number there) one row per order with its payload in `doc` and a cursor that also moves when only a line changed.
SELECT o.id AS id,
       GREATEST(o.updated_at, l.updated_at) AS cursor,
       json_build_object(
         'external_id', o.id::text,
         'status', CASE o.state WHEN 'created' THEN 'new' WHEN 'paid' THEN 'paid' WHEN 'shipped' THEN 'paid'
                   WHEN 'completed' THEN 'delivered' WHEN 'cancelled' THEN 'canceled'
                   WHEN 'partly_refunded' THEN 'part_refunded' END,
         'currency', o.currency,
         'delivery_cost', o.delivery_cost::text,
         'total_price', o.total::text,
         'region', o.region_code,
         'endpoint', o.channel,
         'tags', o.tags::json,
         'create_time', to_char(o.created_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
         'update_time', to_char(o.updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
         'custom_fields', json_build_object('gift_wrap', coalesce(o.gift_wrap, false)),
         'matching', 'email',
         'email', c.email,
         'lines', l.lines
       )::text AS doc
FROM orders o
JOIN customers c ON c.id = o.customer_id
JOIN (SELECT order_id, max(updated_at) AS updated_at,
             json_agg(json_build_object(
               'external_id', id::text,
               'product', sku_code,
               'base_price_per_item', base_price::text,
               'min_price_per_item', min_price::text,
               'final_price_per_item', final_price::text,
               'count', qty,
               'status', CASE state WHEN 'new' THEN 'new' WHEN 'packing' THEN 'processing'
                         WHEN 'in_transit' THEN 'delivering' WHEN 'done' THEN 'delivered' WHEN 'cancelled' THEN 'canceled'
                         WHEN 'returned' THEN 'refunded' WHEN 'pickup_point' THEN 'pickup_point' END,
               'custom_fields', CASE WHEN gift_message IS NOT NULL THEN json_build_object('gift_message', gift_message) END
             )) AS lines
      FROM order_lines GROUP BY order_id) l ON l.order_id = o.id
WHERE NOT o.is_deleted
