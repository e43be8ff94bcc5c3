defmodule Sandbox.Client.JSON do
  @moduledoc false
  # The JSON this client exchanges with the engine. Elixir 1.14 and OTP 25
  # have no JSON module and the client has no dependencies, so it carries this
  # small RFC 8259 encoder and decoder.

  # Encoding: maps (atom or string keys), lists, strings, numbers, booleans,
  # nil; other atoms become their names.
  def encode!(value), do: IO.iodata_to_binary(enc(value))

  defp enc(nil), do: "null"
  defp enc(true), do: "true"
  defp enc(false), do: "false"
  defp enc(value) when is_atom(value), do: enc_string(Atom.to_string(value))
  defp enc(value) when is_binary(value), do: enc_string(value)
  defp enc(value) when is_integer(value), do: Integer.to_string(value)
  defp enc(value) when is_float(value), do: Float.to_string(value)

  defp enc(value) when is_map(value) do
    pairs =
      Enum.map(value, fn {k, v} ->
        [enc_string(key_string(k)), ?:, enc(v)]
      end)

    [?{, Enum.intersperse(pairs, ?,), ?}]
  end

  defp enc(value) when is_list(value), do: [?[, Enum.intersperse(Enum.map(value, &enc/1), ?,), ?]]

  defp enc(value), do: raise(ArgumentError, "cannot encode #{inspect(value)} as JSON")

  defp key_string(k) when is_atom(k), do: Atom.to_string(k)
  defp key_string(k) when is_binary(k), do: k
  defp key_string(k), do: raise(ArgumentError, "cannot encode key #{inspect(k)} as JSON")

  defp enc_string(s) do
    [?", escape(s, []), ?"]
  end

  defp escape(<<>>, acc), do: Enum.reverse(acc)
  defp escape(<<?", rest::binary>>, acc), do: escape(rest, ["\\\"" | acc])
  defp escape(<<?\\, rest::binary>>, acc), do: escape(rest, ["\\\\" | acc])
  defp escape(<<?\n, rest::binary>>, acc), do: escape(rest, ["\\n" | acc])
  defp escape(<<?\r, rest::binary>>, acc), do: escape(rest, ["\\r" | acc])
  defp escape(<<?\t, rest::binary>>, acc), do: escape(rest, ["\\t" | acc])

  defp escape(<<c, rest::binary>>, acc) when c < 0x20,
    do: escape(rest, [:io_lib.format("\\u~4.16.0b", [c]) | acc])

  defp escape(<<c::utf8, rest::binary>>, acc), do: escape(rest, [<<c::utf8>> | acc])
  # Bytes that are not UTF-8 (file names) become U+FFFD, as the engine does.
  defp escape(<<_, rest::binary>>, acc), do: escape(rest, ["\\ufffd" | acc])

  # Decoding: objects become maps with string keys.
  def decode(text) when is_binary(text) do
    {value, rest} = value(skip(text))

    case skip(rest) do
      "" -> {:ok, value}
      _ -> {:error, :trailing_data}
    end
  catch
    {:json_error, reason} -> {:error, reason}
  end

  defp skip(<<c, rest::binary>>) when c in [?\s, ?\t, ?\n, ?\r], do: skip(rest)
  defp skip(rest), do: rest

  defp value(<<?{, rest::binary>>), do: object(skip(rest), %{})
  defp value(<<?[, rest::binary>>), do: array(skip(rest), [])
  defp value(<<?", rest::binary>>), do: string(rest, [])
  defp value(<<"true", rest::binary>>), do: {true, rest}
  defp value(<<"false", rest::binary>>), do: {false, rest}
  defp value(<<"null", rest::binary>>), do: {nil, rest}
  defp value(<<c, _::binary>> = text) when c == ?- or c in ?0..?9, do: number(text)
  defp value(_), do: throw({:json_error, :unexpected_token})

  defp object(<<?}, rest::binary>>, acc), do: {acc, rest}

  defp object(<<?", rest::binary>>, acc) do
    {key, rest} = string(rest, [])

    case skip(rest) do
      <<?:, rest::binary>> ->
        {val, rest} = value(skip(rest))
        acc = Map.put(acc, key, val)

        case skip(rest) do
          <<?,, rest::binary>> -> object(skip(rest), acc)
          <<?}, rest::binary>> -> {acc, rest}
          _ -> throw({:json_error, :expected_comma_or_brace})
        end

      _ ->
        throw({:json_error, :expected_colon})
    end
  end

  defp object(_, _), do: throw({:json_error, :expected_key})

  defp array(<<?], rest::binary>>, acc), do: {Enum.reverse(acc), rest}

  defp array(text, acc) do
    {val, rest} = value(text)

    case skip(rest) do
      <<?,, rest::binary>> -> array(skip(rest), [val | acc])
      <<?], rest::binary>> -> {Enum.reverse([val | acc]), rest}
      _ -> throw({:json_error, :expected_comma_or_bracket})
    end
  end

  defp string(<<?", rest::binary>>, acc), do: {IO.iodata_to_binary(Enum.reverse(acc)), rest}

  defp string(<<?\\, e, rest::binary>>, acc) when e in [?", ?\\, ?/, ?b, ?f, ?n, ?r, ?t] do
    char =
      case e do
        ?b -> ?\b
        ?f -> ?\f
        ?n -> ?\n
        ?r -> ?\r
        ?t -> ?\t
        other -> other
      end

    string(rest, [char | acc])
  end

  defp string(<<"\\u", hex::binary-size(4), rest::binary>>, acc) do
    code = hex_value(hex)

    if code in 0xD800..0xDBFF do
      case rest do
        <<"\\u", low::binary-size(4), rest2::binary>> ->
          low_code = hex_value(low)
          combined = 0x10000 + Bitwise.bsl(code - 0xD800, 10) + (low_code - 0xDC00)
          string(rest2, [<<combined::utf8>> | acc])

        _ ->
          string(rest, ["\uFFFD" | acc])
      end
    else
      char = if code in 0xDC00..0xDFFF, do: 0xFFFD, else: code
      string(rest, [<<char::utf8>> | acc])
    end
  end

  defp string(<<c, rest::binary>>, acc) when c >= 0x20 and c != ?\\, do: string(rest, [c | acc])
  defp string(_, _), do: throw({:json_error, :bad_string})

  defp hex_value(hex) do
    case Integer.parse(hex, 16) do
      {n, ""} -> n
      _ -> throw({:json_error, :bad_unicode_escape})
    end
  end

  defp number(text) do
    {token, rest} = take_number(text, [])

    parsed =
      if String.contains?(token, [".", "e", "E"]) do
        Float.parse(token)
      else
        Integer.parse(token)
      end

    case parsed do
      {n, ""} -> {n, rest}
      _ -> throw({:json_error, :bad_number})
    end
  end

  defp take_number(<<c, rest::binary>>, acc) when c in ?0..?9 or c in [?-, ?+, ?., ?e, ?E],
    do: take_number(rest, [c | acc])

  defp take_number(rest, acc), do: {acc |> Enum.reverse() |> IO.iodata_to_binary(), rest}
end
