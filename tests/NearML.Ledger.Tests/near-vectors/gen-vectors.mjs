// Generates NEAR transaction test vectors with the official JavaScript library (@near-js/transactions,
// @near-js/crypto). Every key comes from a fixed seed, so the output is deterministic and the committed
// vectors.json can be re-generated and diffed:  npm ci && node gen-vectors.mjs > vectors.json
//
// Borsh strings (account ids, method names) are ASCII here on purpose: borsh-js 1.0.0 writes a string as its
// UTF-16 code units truncated to bytes with a code-unit length, not as UTF-8 the way nearcore (Rust String) and
// the Borsh specification do; NEAR account ids are ASCII by rule. Non-ASCII text is covered where it matters for
// payouts: UTF-8 JSON args and memos, which are byte vectors.
//
// Each vector carries a library-neutral description ("spec") that the C# tests use to rebuild the same
// transaction independently, plus the bytes, hash and signature the JS library produced.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { KeyPair, KeyPairEd25519, PublicKey } from '@near-js/crypto';
import {
  actionCreators, createTransaction, encodeTransaction, encodeDelegateAction, buildDelegateAction,
  SignedTransaction, Signature, DelegateAction,
} from '@near-js/transactions';
import { baseEncode } from '@near-js/utils';

const sha256 = (bytes) => new Uint8Array(createHash('sha256').update(bytes).digest());
const hex = (bytes) => Buffer.from(bytes).toString('hex');

// ed25519 key pair from a 32-byte seed derived from a label.
function keyFromLabel(label) {
  const seed = sha256(Buffer.from(`nearml-vector-key:${label}`, 'utf8'));
  const probe = new KeyPairEd25519(baseEncode(new Uint8Array([...seed, ...new Uint8Array(32)])));
  const pub = probe.getPublicKey().data;
  const kp = new KeyPairEd25519(baseEncode(new Uint8Array([...seed, ...pub])));
  return { kp, seedHex: hex(seed), secret: kp.toString(), public: kp.getPublicKey().toString(), publicHex: hex(pub) };
}

function blockHashFromLabel(label) {
  return sha256(Buffer.from(`nearml-vector-block:${label}`, 'utf8'));
}

const U64_MAX = (1n << 64n) - 1n;
const U128_MAX = (1n << 128n) - 1n;
const { transfer, createAccount, deployContract, functionCall, stake, addKey, deleteKey, deleteAccount,
  fullAccessKey, functionCallAccessKey, signedDelegate } = actionCreators;

// Converts a spec action (neutral JSON) into a @near-js action.
function toAction(a) {
  switch (a.type) {
    case 'CreateAccount': return createAccount();
    case 'DeployContract': return deployContract(Buffer.from(a.codeHex, 'hex'));
    case 'FunctionCall': return functionCall(a.methodName, Buffer.from(a.argsHex, 'hex'), BigInt(a.gas), BigInt(a.deposit));
    case 'Transfer': return transfer(BigInt(a.deposit));
    case 'Stake': return stake(BigInt(a.stake), PublicKey.from(a.publicKey));
    case 'AddKey': {
      const ak = a.permission.type === 'FullAccess'
        ? fullAccessKey()
        : functionCallAccessKey(a.permission.receiverId, a.permission.methodNames,
            a.permission.allowance === null ? undefined : BigInt(a.permission.allowance));
      ak.nonce = BigInt(a.accessKeyNonce);
      return addKey(PublicKey.from(a.publicKey), ak);
    }
    case 'DeleteKey': return deleteKey(PublicKey.from(a.publicKey));
    case 'DeleteAccount': return deleteAccount(a.beneficiaryId);
    case 'Delegate': {
      const signer = keys[a.signerKey];
      const da = buildDelegateAction({
        senderId: a.senderId, receiverId: a.receiverId, actions: a.actions.map(toAction),
        nonce: BigInt(a.nonce), maxBlockHeight: BigInt(a.maxBlockHeight), publicKey: signer.kp.getPublicKey(),
      });
      const encoded = encodeDelegateAction(da);
      const hash = sha256(encoded);
      const { signature } = signer.kp.sign(hash);
      a.expectedDelegateHashHex = hex(hash);
      a.expectedDelegateEncodedHex = hex(encoded);
      a.expectedDelegateSignatureHex = hex(signature);
      return signedDelegate({ delegateAction: da, signature: new Signature({ keyType: 0, data: signature }) });
    }
    default: throw new Error(`unknown action ${a.type}`);
  }
}

const keys = {
  alice: keyFromLabel('alice'),
  bob: keyFromLabel('bob'),
  relayer: keyFromLabel('relayer'),
  validator: keyFromLabel('validator'),
  longname: keyFromLabel('longname'),
};

const utf8Hex = (s) => Buffer.from(s, 'utf8').toString('hex');
const long64 = 'a'.repeat(20) + '-' + 'b'.repeat(20) + '.' + 'c'.repeat(14) + '.testnet'; // 64 chars
if (long64.length !== 64) throw new Error(`long id has ${long64.length} chars`);
const implicit = keys.bob.publicHex; // 64-char implicit account id

const specs = [
  { name: 'transfer-simple', signer: 'alice', signerId: 'alice.testnet', receiverId: 'bob.testnet', nonce: '1', block: 'b1',
    actions: [{ type: 'Transfer', deposit: '1000000000000000000000000' }] },
  { name: 'transfer-u128-max-nonce-u64-max', signer: 'alice', signerId: 'alice.near', receiverId: 'bob.near', nonce: U64_MAX.toString(), block: 'b2',
    actions: [{ type: 'Transfer', deposit: U128_MAX.toString() }] },
  { name: 'create-account-full', signer: 'alice', signerId: 'alice.testnet', receiverId: 'sub.alice.testnet', nonce: '42', block: 'b3',
    actions: [
      { type: 'CreateAccount' },
      { type: 'Transfer', deposit: '100000000000000000000000' },
      { type: 'AddKey', publicKey: keys.bob.public, accessKeyNonce: '0', permission: { type: 'FullAccess' } },
    ] },
  { name: 'deploy-contract', signer: 'alice', signerId: 'alice.testnet', receiverId: 'alice.testnet', nonce: '7', block: 'b4',
    actions: [{ type: 'DeployContract', codeHex: '0061736d01000000' + hex(sha256(Buffer.from('wasm'))) }] },
  { name: 'function-call-utf8-args', signer: 'alice', signerId: 'alice.testnet', receiverId: 'token.testnet', nonce: '123456789012', block: 'b5',
    actions: [{ type: 'FunctionCall', methodName: 'ft_transfer',
      argsHex: utf8Hex(JSON.stringify({ receiver_id: 'bob.testnet', amount: '12345', memo: 'epoch 7 — Grüße 🚀 日本語' })),
      gas: '30000000000000', deposit: '1' }] },
  { name: 'function-call-gas-u64-max-empty-args', signer: 'alice', signerId: 'alice.testnet', receiverId: 'contract.testnet', nonce: '5', block: 'b6',
    actions: [{ type: 'FunctionCall', methodName: 'anchor_root', argsHex: '', gas: U64_MAX.toString(), deposit: U128_MAX.toString() }] },
  { name: 'stake', signer: 'validator', signerId: 'validator.poolv1.near', receiverId: 'validator.poolv1.near', nonce: '99', block: 'b7',
    actions: [{ type: 'Stake', stake: '50000000000000000000000000000', publicKey: keys.validator.public }] },
  { name: 'add-key-function-call-allowance', signer: 'alice', signerId: 'alice.testnet', receiverId: 'alice.testnet', nonce: '8', block: 'b8',
    actions: [{ type: 'AddKey', publicKey: keys.relayer.public, accessKeyNonce: '0',
      permission: { type: 'FunctionCall', allowance: '250000000000000000000000', receiverId: 'ledger.nearml.testnet', methodNames: ['anchor_root', 'ft_transfer', 'storage_deposit'] } }] },
  { name: 'add-key-function-call-no-allowance-no-methods', signer: 'alice', signerId: 'alice.testnet', receiverId: 'alice.testnet', nonce: '9', block: 'b9',
    actions: [{ type: 'AddKey', publicKey: keys.relayer.public, accessKeyNonce: U64_MAX.toString(),
      permission: { type: 'FunctionCall', allowance: null, receiverId: 'x.testnet', methodNames: [] } }] },
  { name: 'delete-key-delete-account', signer: 'alice', signerId: 'alice.testnet', receiverId: 'alice.testnet', nonce: '10', block: 'b10',
    actions: [{ type: 'DeleteKey', publicKey: keys.relayer.public }, { type: 'DeleteAccount', beneficiaryId: 'bob.testnet' }] },
  { name: 'long-account-ids-64-chars', signer: 'longname', signerId: long64, receiverId: implicit, nonce: '18446744073709551614', block: 'b11',
    actions: [{ type: 'Transfer', deposit: '1' }] },
  { name: 'implicit-signer', signer: 'bob', signerId: implicit, receiverId: long64, nonce: '3', block: 'b12',
    actions: [{ type: 'Transfer', deposit: '0' }, { type: 'FunctionCall', methodName: 'm', argsHex: 'ff00', gas: '0', deposit: '0' }] },
  { name: 'delegate-meta-transaction', signer: 'relayer', signerId: 'relayer.testnet', receiverId: 'alice.testnet', nonce: '1000', block: 'b13',
    actions: [{ type: 'Delegate', signerKey: 'alice', senderId: 'alice.testnet', receiverId: 'token.testnet', nonce: '77', maxBlockHeight: '123456789',
      actions: [
        { type: 'FunctionCall', methodName: 'ft_transfer', argsHex: utf8Hex('{"receiver_id":"bob.testnet","amount":"1","memo":"épocha 3"}'), gas: '30000000000000', deposit: '1' },
        { type: 'Transfer', deposit: U128_MAX.toString() },
      ] }] },
  { name: 'all-actions', signer: 'alice', signerId: 'alice.testnet', receiverId: 'new.alice.testnet', nonce: '4294967296', block: 'b14',
    actions: [
      { type: 'CreateAccount' },
      { type: 'DeployContract', codeHex: '0061736d' },
      { type: 'FunctionCall', methodName: 'init', argsHex: utf8Hex('{}'), gas: '1', deposit: '2' },
      { type: 'Transfer', deposit: '3' },
      { type: 'Stake', stake: '4', publicKey: keys.validator.public },
      { type: 'AddKey', publicKey: keys.bob.public, accessKeyNonce: '5', permission: { type: 'FullAccess' } },
      { type: 'DeleteKey', publicKey: keys.alice.public },
      { type: 'DeleteAccount', beneficiaryId: 'alice.testnet' },
    ] },
];

const vectors = specs.map((s) => {
  const signer = keys[s.signer];
  const blockHash = blockHashFromLabel(s.block);
  const actions = s.actions.map(toAction);
  const tx = createTransaction(s.signerId, signer.kp.getPublicKey(), s.receiverId, BigInt(s.nonce), actions, blockHash);
  const txBytes = encodeTransaction(tx);
  const hash = sha256(txBytes);
  const { signature } = signer.kp.sign(hash);
  const signed = new SignedTransaction({ transaction: tx, signature: new Signature({ keyType: 0, data: signature }) });
  const signedBytes = signed.encode();
  return {
    name: s.name,
    spec: { signerKey: s.signer, signerId: s.signerId, publicKey: signer.public, nonce: s.nonce, receiverId: s.receiverId,
      blockHash: baseEncode(blockHash), actions: s.actions },
    transactionHex: hex(txBytes),
    hashHex: hex(hash),
    hashBase58: baseEncode(hash),
    signatureHex: hex(signature),
    signedTransactionHex: hex(signedBytes),
    signedTransactionBase64: Buffer.from(signedBytes).toString('base64'),
  };
});

function libraryVersion(pkg) {
  const url = new URL(`./node_modules/${pkg}/package.json`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')).version;
}

const keyOut = Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, { seedHex: v.seedHex, secretKey: v.secret, publicKey: v.public, implicitAccountId: v.publicHex }]));
process.stdout.write(JSON.stringify({
  generator: 'gen-vectors.mjs with @near-js/transactions and @near-js/crypto',
  library: Object.fromEntries(['@near-js/transactions', '@near-js/crypto'].map((p) => [p, libraryVersion(p)])),
  keys: keyOut,
  vectors,
}, null, 2) + '\n');
