using Google.Protobuf;
using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation;

/// <summary>
/// Client of plain (unmasked) aggregation for a trusted or TEE-hosted aggregator: same interface and wire format as the
/// secure client, one message (the bit-packed fixed-point input) and no keys.
/// </summary>
public sealed class PlainAggregationClient : IAggregationClient
{
    private readonly AggregationConfig _config;
    private readonly uint[] _input;

    /// <summary>Initializes a new client.</summary>
    /// <param name="config">A configuration with protocol Plain.</param>
    /// <param name="clientId">This client's id.</param>
    /// <param name="input">Exactly vector_length ring elements.</param>
    public PlainAggregationClient(AggregationConfig config, uint clientId, ReadOnlySpan<uint> input)
    {
        AggregationRound.Validate(config);
        if (config.Protocol != AggregationProtocol.Plain)
        {
            throw new ArgumentException($"protocol is {config.Protocol}; PlainAggregationClient runs Plain only", nameof(config));
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(clientId, config.NumClients);
        if (input.Length != config.VectorLength)
        {
            throw new ArgumentException($"input has {input.Length} elements, vector_length is {config.VectorLength}", nameof(input));
        }

        _config = config;
        ClientId = clientId;
        _input = input.ToArray();
    }

    /// <inheritdoc/>
    public uint ClientId { get; }

    /// <inheritdoc/>
    public AggregationPhase Phase { get; private set; } = AggregationPhase.AdvertiseKeys;

    /// <inheritdoc/>
    public string? RefusalReason => null;

    /// <inheritdoc/>
    public ClientMessage Start()
    {
        var packed = new byte[RingPacking.PackedLength(_input.Length, (int)_config.RingBits)];
        RingPacking.Pack(_input, (int)_config.RingBits, packed);
        Phase = AggregationPhase.Completed;
        return new ClientMessage
        {
            JobId = _config.JobId,
            Round = _config.Round,
            Sender = ClientId,
            PlainInput = new PlainInput { Vector = UnsafeByteOperations.UnsafeWrap(packed) },
        };
    }

    /// <inheritdoc/>
    public ClientMessage Handle(ServerMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        throw new AggregationProtocolException(ClientId, $"plain aggregation has no server messages; got {message.BodyCase}");
    }
}

/// <summary>Server of plain aggregation: sums the bit-packed inputs it receives; <see cref="Advance"/> closes collection.</summary>
public sealed class PlainAggregationServer : IAggregationServer
{
    private readonly AggregationConfig _config;
    private readonly uint[] _sum;
    private readonly Dictionary<uint, byte[]> _hashes = [];
    private readonly int _minimumInputs;
    private AggregationResult? _result;

    /// <summary>Initializes a new server.</summary>
    /// <param name="config">A configuration with protocol Plain.</param>
    /// <param name="minimumInputs">Fewest inputs for a valid round (at least 1).</param>
    public PlainAggregationServer(AggregationConfig config, int minimumInputs = 1)
    {
        AggregationRound.Validate(config);
        if (config.Protocol != AggregationProtocol.Plain)
        {
            throw new ArgumentException($"protocol is {config.Protocol}; PlainAggregationServer runs Plain only", nameof(config));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(minimumInputs, 1);
        _config = config;
        _minimumInputs = minimumInputs;
        _sum = new uint[config.VectorLength];
    }

    /// <inheritdoc/>
    public AggregationPhase Phase { get; private set; } = AggregationPhase.AdvertiseKeys;

    /// <inheritdoc/>
    public void Receive(ClientMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.JobId != _config.JobId || message.Round != _config.Round)
        {
            throw new AggregationReplayException(message.Sender, $"message for job '{message.JobId}' round {message.Round}, this round is job '{_config.JobId}' round {_config.Round}");
        }

        uint u = message.Sender;
        if (u >= _config.NumClients)
        {
            throw new AggregationProtocolException(u, $"sender id {u} is not below num_clients = {_config.NumClients}");
        }

        if (Phase != AggregationPhase.AdvertiseKeys || message.BodyCase != ClientMessage.BodyOneofCase.PlainInput)
        {
            throw new AggregationProtocolException(u, $"unexpected {message.BodyCase} during {Phase}");
        }

        int bits = (int)_config.RingBits;
        int expected = RingPacking.PackedLength((int)_config.VectorLength, bits);
        var vector = message.PlainInput.Vector.Span;
        if (vector.Length != expected)
        {
            throw new AggregationProtocolException(u, $"vector has {vector.Length} bytes, {expected} expected");
        }

        var hash = System.Security.Cryptography.SHA256.HashData(vector);
        if (_hashes.TryGetValue(u, out var earlier))
        {
            if (earlier.AsSpan().SequenceEqual(hash))
            {
                return;
            }

            throw new AggregationEquivocationException(u, "sent two different inputs; the first stands");
        }

        _hashes[u] = hash;
        RingPacking.UnpackAdd(vector, bits, _sum);
    }

    /// <inheritdoc/>
    public IReadOnlyList<ServerMessage> Advance()
    {
        if (Phase != AggregationPhase.AdvertiseKeys)
        {
            throw new InvalidOperationException($"round is {Phase}");
        }

        if (_hashes.Count < _minimumInputs)
        {
            Phase = AggregationPhase.Failed;
            throw new AggregationFailedException(AggregationPhase.AdvertiseKeys, $"only {_hashes.Count} inputs; at least {_minimumInputs} needed");
        }

        int bits = (int)_config.RingBits;
        if (bits < 32)
        {
            System.Numerics.Tensors.TensorPrimitives.BitwiseAnd(_sum, (1u << bits) - 1, _sum);
        }

        _result = new AggregationResult(_sum, bits, _hashes.Keys.Order().ToArray());
        Phase = AggregationPhase.Completed;
        return [];
    }

    /// <inheritdoc/>
    public AggregationResult Finish() => _result ?? throw new InvalidOperationException($"the round is in {Phase}, not complete");
}
