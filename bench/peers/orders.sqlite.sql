-- The demo shop's orders as Altcraft order records, nested in SQL the way a drt or dlt user would write it:
-- (prices as strings: Altcraft refuses a number there) one row per order with its payload in `doc` and a cursor that also moves when only a line changed.
SELECT o.id AS id,
       max(o.updated_at, l.updated_at) AS cursor,
       json_object(
         'external_id', CAST(o.id AS TEXT),
         'status', CASE o.state WHEN 'created' THEN 'new' WHEN 'paid' THEN 'paid' WHEN 'shipped' THEN 'paid'
                   WHEN 'completed' THEN 'delivered' WHEN 'cancelled' THEN 'canceled'
                   WHEN 'partly_refunded' THEN 'part_refunded' END,
         'currency', o.currency,
         'delivery_cost', CAST(o.delivery_cost AS TEXT),
         'total_price', CAST(o.total AS TEXT),
         'region', o.region_code,
         'endpoint', o.channel,
         'tags', json(o.tags),
         'create_time', strftime('%Y-%m-%dT%H:%M:%fZ', o.created_at),
         'update_time', strftime('%Y-%m-%dT%H:%M:%fZ', o.updated_at),
         'custom_fields', json_object('gift_wrap', json(CASE WHEN o.gift_wrap THEN 'true' ELSE 'false' END)),
         'matching', 'email',
         'email', c.email,
         'lines', json(l.lines)
       ) AS doc
FROM orders o
JOIN customers c ON c.id = o.customer_id
JOIN (SELECT order_id, max(updated_at) AS updated_at,
             json_group_array(json_object(
               'external_id', CAST(id AS TEXT),
               'product', sku_code,
               'base_price_per_item', CAST(base_price AS TEXT),
               'min_price_per_item', CAST(min_price AS TEXT),
               'final_price_per_item', CAST(final_price AS TEXT),
               'count', qty,
               'status', CASE state WHEN 'new' THEN 'new' WHEN 'packing' THEN 'processing'
                         WHEN 'in_transit' THEN 'delivering' WHEN 'done' THEN 'delivered' WHEN 'cancelled' THEN 'canceled'
                         WHEN 'returned' THEN 'refunded' WHEN 'pickup_point' THEN 'pickup_point' END,
               'custom_fields', CASE WHEN gift_message IS NOT NULL THEN json_object('gift_message', gift_message) END
             )) AS lines
      FROM order_lines GROUP BY order_id) l ON l.order_id = o.id
WHERE NOT o.is_deleted
